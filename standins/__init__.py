"""Local stand-ins for every upstream, on 127.0.0.1 or on disk: real protocol servers (HTTP with
Range, FTP, S3, PostgreSQL), Zenodo's records API and Kaggle's API, a GEO-shaped folder tree built
around real NCBI files, and a CELLxGENE census in the census's layout. The tests, the demo
(`demo/run.py`) and the benchmarks (`bench/`) use them; the workflow never does."""
