#![no_std]
// The programs live in the `plainsight` bin target (built for bpfel by
// agent/build.rs); this empty library lets the host workspace depend on the
// crate so cargo rebuilds the agent when it changes.
