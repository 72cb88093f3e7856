"""The run folder: the data contract at the bottom of the harness (loadtests/ and bench/ write it, analysis/
reads it). It imports nothing of the project's other packages."""
