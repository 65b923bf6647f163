/*
 * fuzz.h -- what every fuzz target shares: libFuzzer's entry point, and a scratch file for
 * readers that take a path.
 *
 * Each target (fuzz_*.c) is one LLVMFuzzerTestOneInput. Built with the "fuzz" preset
 * (clang, -fsanitize=fuzzer,address,undefined) it is a libFuzzer binary for long runs;
 * in every other build it links driver.c, which replays a corpus and a fixed number of
 * deterministic mutations of it, so the suite runs each target briefly on every commit
 * (bench/README.md records the long runs).
 */
#ifndef CONTIMG_FUZZ_H
#define CONTIMG_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data to this process's scratch file (in /dev/shm when there is one) and returns
 * its path, or NULL. The same path each call: the readers open it by name. */
const char *fuzz_scratch_file(const uint8_t *data, size_t size, const char *suffix);

#endif
