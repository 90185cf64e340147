//! Generated Kubernetes audit traffic for the demo and benchmarks.
