// Licensed under the MIT License. See LICENSE in the repository root.
using Xunit;

// CUDA stream capture is process-wide in its effect: while one test captures a decode graph (CapturedDecode), a
// synchronizing call from another test's thread fails with cudaErrorStreamCaptureUnsupported and invalidates the
// capture. The server has one runner thread per process, so this only concerns tests: they run one at a time.
[assembly: CollectionBehavior(CollectionBehavior.CollectionPerAssembly)]
