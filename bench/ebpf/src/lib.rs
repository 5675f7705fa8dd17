#![no_std]
// The programs live in the `floor` bin target (built for bpfel by
// bench/build.rs); this empty library lets the bench depend on the crate so
// cargo rebuilds the bench when it changes.
