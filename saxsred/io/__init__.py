"""Reading and writing: frames (fabio, h5py), 1-D curves (text, NXcanSAS), snapshots."""
