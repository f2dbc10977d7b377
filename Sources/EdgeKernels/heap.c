// edge_heap_trim: the C library's heap, not a kernel; here because EdgeKernels is the runtime's C module.
#include "EdgeKernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void edge_heap_trim(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
