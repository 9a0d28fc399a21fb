"""The inference core: the input spec, whole-image / sliding-window prediction, loading trained models (run
directories, checkpoints, packages), inputs, volumes (NIfTI) and writers. It imports only the foundations, data,
metrics and models; the applications on top of it live in :mod:`dualseg.deploy`."""
