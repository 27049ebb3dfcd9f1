#ifndef SINEW_CZSTD_SHIM_H
#define SINEW_CZSTD_SHIM_H
#include <zstd.h>
#endif
