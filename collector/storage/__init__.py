"""Episode files: the layout (paths in the file), the writer, the reader, recover and validate."""

# Registers the Blosc/zstd filter with HDF5, so episodes written with `compression: zstd` read
# back everywhere in Collector (plain h5py needs the same `import hdf5plugin`).
import hdf5plugin  # noqa: F401
