"""Everything that reads or writes: architecture text, HDF5 stores, benchmark importers,
the workspace folder, datasets and checkpoints.  No model code lives here.
"""
