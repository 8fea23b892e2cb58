"""What the tests and the benchmarks share: starting and stopping the service's processes, and the
random-weight model checkpoint. Nothing here imports Django at import time, so `bench/` may use it
before it sets Django up."""
