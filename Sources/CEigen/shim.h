#ifndef SINEW_CEIGEN_SHIM_H
#define SINEW_CEIGEN_SHIM_H
/* Intentionally empty: see module.modulemap. */
#endif
