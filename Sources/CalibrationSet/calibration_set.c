// Embeds calibration.txt (found through this target's header search path, "."). The assembler's
// .incbin copies the file's bytes into .rodata at build time: no generated source, no copy of the
// text in the repository. After editing calibration.txt, touch this file so the build picks it up.
#include "CalibrationSet.h"

#if defined(__APPLE__)
#define EDGE_SYM(name) "_" #name
#define EDGE_RODATA ".const_data"
#else
#define EDGE_SYM(name) #name
#define EDGE_RODATA ".section .rodata"
#endif

__asm__(EDGE_RODATA "\n"
        ".balign 16\n"
        EDGE_SYM(edge_calibration_begin) ":\n"
        ".incbin \"calibration.txt\"\n"
        EDGE_SYM(edge_calibration_end) ":\n"
        ".byte 0\n"
        ".text\n");

extern const unsigned char edge_calibration_begin[];
extern const unsigned char edge_calibration_end[];

const unsigned char *edge_calibration_set(size_t *length) {
    *length = (size_t)(edge_calibration_end - edge_calibration_begin);
    return edge_calibration_begin;
}
