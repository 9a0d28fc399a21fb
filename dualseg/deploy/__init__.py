"""Applications on top of the inference core: prediction of image folders and volumes, packages, export."""
