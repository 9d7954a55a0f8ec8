"""Episode files: the layout (paths inside the file), the writer and the reader."""
