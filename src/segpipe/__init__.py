"""segpipe: a DVC-driven U-Net segmentation pipeline (prepare, train, evaluate, visualize)."""
