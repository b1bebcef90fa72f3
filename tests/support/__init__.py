"""What the tests share: data and pipeline runs, the local Vertex harness and Cloud Storage,
the browser driver, worker processes."""
