"""Built-in method plugins, one module each; installed as `lt_bench.methods`."""
