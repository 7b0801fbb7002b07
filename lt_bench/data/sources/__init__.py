"""Built-in dataset sources, one module each; importing a module registers its datasets."""
