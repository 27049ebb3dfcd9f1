#ifndef SINEW_CSERIALPORT_SHIM_H
#define SINEW_CSERIALPORT_SHIM_H
#include <libserialport.h>
#endif
