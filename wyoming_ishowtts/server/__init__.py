"""The Wyoming server: command line, serving, protocol handling and the engine worker thread."""
