// The bundled calibration set (Sources/CalibrationSet/calibration.txt), linked into the compressor
// as read-only bytes so `compress` needs no file beside it. Made by scripts/make_texts.py; what it
// holds, its sources and licenses: Fixtures/README.md.
#ifndef EDGE_CALIBRATION_SET_H
#define EDGE_CALIBRATION_SET_H

#include <stddef.h>

/// The calibration text: UTF-8 bytes, `*length` of them (a NUL follows, not counted).
const unsigned char *edge_calibration_set(size_t *length);

#endif
