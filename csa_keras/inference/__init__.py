"""Using trained models outside training, for any registered task.

One module per job, imported on demand (this package imports nothing);
``docs/layout.md`` lists them.
"""
