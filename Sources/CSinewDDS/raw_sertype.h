// The raw sertype's internals shared by sinew_dds.c (not part of the module's public header).
#ifndef SINEW_RAW_SERTYPE_H
#define SINEW_RAW_SERTYPE_H

#include <stdint.h>
#include "dds/ddsi/ddsi_sertype.h"
#include "dds/ddsi/ddsi_serdata.h"

/// A raw sample as an application sees it: the serialised bytes (encapsulation header first).
struct sinew_raw_sample {
  const uint8_t *data;
  uint32_t size;
};

/// A new raw sertype named `type_name` (reference count 0: hand it to dds_create_topic_sertype).
struct ddsi_sertype *sinew_raw_sertype_new(const char *type_name);

/// Copies at most `capacity` bytes of a raw serdata into `buffer`; returns its full size (0 for another kind).
uint32_t sinew_raw_serdata_copy(const struct ddsi_serdata *d, uint8_t *buffer, uint32_t capacity);

#endif
