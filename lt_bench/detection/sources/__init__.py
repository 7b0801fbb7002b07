"""Built-in instance segmentation datasets, registered in `lt_bench.detection.data.DETECTION_DATASETS`."""
