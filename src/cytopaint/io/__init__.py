"""Input and output at the edges of the pipeline: OME-Zarr stores, artifact masks, the sections table
and the batch result files. Nothing here knows about tiles, models or sampling."""
