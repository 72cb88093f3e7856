"""Starting and stopping the processes under test: the embedded Redis, the API, the workers."""
