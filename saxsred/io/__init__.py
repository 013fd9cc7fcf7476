"""Reading and writing only: detector frames, their metadata, 1-D curves, JSON, atomic writes.

Modules
-------
frames     :class:`~saxsred.io.frames.Frame` and the readers (fabio for EDF, CBF, TIFF;
           h5py for Eiger, NeXus and ID02 LIMA files): ``iter_frames``, ``read_frame``,
           ``read_image``, ``count_frames``
header     :class:`~saxsred.io.header.FrameMetadata`: header keys normalised to SI units,
           monitor checks, Pilatus/Eiger header lines
sidecars   metadata in files beside a frame (EDNA XML, beamline logs), ``frame_metadata``
curves     3-column text curves and azimuthal profiles; ``read_curve`` reads every format
nxcansas   NXcanSAS (v1.1) HDF5 curves, read and written
jsonfile   deterministic JSON (sorted keys, NaN as null)
atomic     atomic writes: a temporary name in the same folder, then a rename

Nothing here knows about geometry or reduction; every later stage reads and writes
through these modules. Names moved between modules stay importable from where they were
(``saxsred.io.frames`` re-exports the header and side-file names, ``saxsred.io.curves``
the NXcanSAS ones).
"""
