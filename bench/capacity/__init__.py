"""offload-bench capacity: where each mode stops holding the 100-1000 ms target, and how many workers keep up."""
