// A Cyclone DDS sertype whose samples are their serialised bytes: what arrives is kept as it came (encapsulation
// header first) and handed to Sinew's decoders, which check every length and count what they refuse. Cyclone's own
// deserialiser would drop a malformed sample silently; this way a bad sample is seen, counted and named.
//
// Written against Cyclone DDS 0.10's ddsi_sertype.h / ddsi_serdata.h contracts (the serdata and sertype operation
// tables and what each must do, as those headers document them). Keyless topics only: every sample is one instance.
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "dds/dds.h"
#include "dds/ddsi/ddsi_sertype.h"
#include "dds/ddsi/ddsi_serdata.h"
#include "dds/ddsi/q_radmin.h"
#include "raw_sertype.h"

/// The largest sample kept (bytes): beyond this a sample is not copied at all. Sinew's decoders have limits far
/// below it; this only bounds what a hostile writer can make this process allocate per sample.
#define SINEW_RAW_MAX_SAMPLE (16u << 20)

struct sinew_raw_serdata {
  struct ddsi_serdata c;
  uint32_t size;
  /// `size` bytes, then zeros up to a multiple of 4 (to_ser may be asked for those).
  unsigned char *data;
};

static struct sinew_raw_serdata *raw_new(const struct ddsi_sertype *type, enum ddsi_serdata_kind kind, size_t size) {
  if (size > SINEW_RAW_MAX_SAMPLE) return NULL;
  struct sinew_raw_serdata *d = calloc(1, sizeof(*d));
  if (d == NULL) return NULL;
  size_t padded = (size + 3u) & ~(size_t)3u;
  d->data = calloc(1, padded > 0 ? padded : 4);
  if (d->data == NULL) {
    free(d);
    return NULL;
  }
  ddsi_serdata_init(&d->c, type, kind);
  d->size = (uint32_t)size;
  return d;
}

static bool raw_eqkey(const struct ddsi_serdata *a, const struct ddsi_serdata *b) {
  (void)a;
  (void)b;
  return true;
}

static uint32_t raw_get_size(const struct ddsi_serdata *dcmn) {
  return ((const struct sinew_raw_serdata *)dcmn)->size;
}

static struct ddsi_serdata *raw_from_ser(
    const struct ddsi_sertype *type, enum ddsi_serdata_kind kind, const struct nn_rdata *fragchain, size_t size) {
  struct sinew_raw_serdata *d = raw_new(type, kind, size);
  if (d == NULL) return NULL;
  // Fragments arrive in order and may overlap: copy each one's bytes beyond what earlier ones covered.
  uint32_t covered = 0;
  for (const struct nn_rdata *frag = fragchain; frag != NULL; frag = frag->nextfrag) {
    if (frag->maxp1 <= covered || frag->min > covered) continue;
    uint32_t end = frag->maxp1 > size ? (uint32_t)size : frag->maxp1;
    if (end <= covered) continue;
    const unsigned char *payload = NN_RMSG_PAYLOADOFF(frag->rmsg, NN_RDATA_PAYLOAD_OFF(frag));
    memcpy(d->data + covered, payload + (covered - frag->min), end - covered);
    covered = end;
  }
  if (covered < size) {
    // A gap in the fragments: what is missing stays zero, and the decoder sees the sample as it is.
    d->size = covered;
  }
  return &d->c;
}

static struct ddsi_serdata *raw_from_ser_iov(
    const struct ddsi_sertype *type, enum ddsi_serdata_kind kind, ddsrt_msg_iovlen_t niov, const ddsrt_iovec_t *iov,
    size_t size) {
  struct sinew_raw_serdata *d = raw_new(type, kind, size);
  if (d == NULL) return NULL;
  size_t offset = 0;
  for (ddsrt_msg_iovlen_t i = 0; i < niov && offset < size; i++) {
    size_t n = iov[i].iov_len;
    if (n > size - offset) n = size - offset;
    memcpy(d->data + offset, iov[i].iov_base, n);
    offset += n;
  }
  d->size = (uint32_t)offset;
  return &d->c;
}

static struct ddsi_serdata *raw_from_keyhash(const struct ddsi_sertype *type, const struct ddsi_keyhash *keyhash) {
  (void)keyhash;
  struct sinew_raw_serdata *d = raw_new(type, SDK_KEY, 0);
  return d ? &d->c : NULL;
}

static struct ddsi_serdata *raw_from_sample(const struct ddsi_sertype *type, enum ddsi_serdata_kind kind, const void *sample) {
  const struct sinew_raw_sample *s = sample;
  if (kind != SDK_DATA) {
    struct sinew_raw_serdata *d = raw_new(type, kind, 0);
    return d ? &d->c : NULL;
  }
  struct sinew_raw_serdata *d = raw_new(type, kind, s->size);
  if (d == NULL) return NULL;
  if (s->size > 0) memcpy(d->data, s->data, s->size);
  return &d->c;
}

static void raw_to_ser(const struct ddsi_serdata *dcmn, size_t off, size_t sz, void *buf) {
  const struct sinew_raw_serdata *d = (const struct sinew_raw_serdata *)dcmn;
  size_t padded = (d->size + 3u) & ~(size_t)3u;
  if (off >= padded) return;
  if (sz > padded - off) sz = padded - off;
  memcpy(buf, d->data + off, sz);
}

static struct ddsi_serdata *raw_to_ser_ref(const struct ddsi_serdata *dcmn, size_t off, size_t sz, ddsrt_iovec_t *ref) {
  const struct sinew_raw_serdata *d = (const struct sinew_raw_serdata *)dcmn;
  ref->iov_base = d->data + off;
  ref->iov_len = (ddsrt_iov_len_t)sz;
  return ddsi_serdata_ref(dcmn);
}

static void raw_to_ser_unref(struct ddsi_serdata *d, const ddsrt_iovec_t *ref) {
  (void)ref;
  ddsi_serdata_unref(d);
}

static bool raw_to_sample(const struct ddsi_serdata *dcmn, void *sample, void **bufptr, void *buflim) {
  (void)bufptr;
  (void)buflim;
  // Only the size is reported here: the bytes are taken with dds_takecdr, never through a sample.
  const struct sinew_raw_serdata *d = (const struct sinew_raw_serdata *)dcmn;
  struct sinew_raw_sample *s = sample;
  s->data = d->data;
  s->size = d->size;
  return true;
}

static struct ddsi_serdata *raw_to_untyped(const struct ddsi_serdata *dcmn) {
  // Keyless: the "key" is nothing at all.
  struct sinew_raw_serdata *d = raw_new(dcmn->type, SDK_KEY, 0);
  if (d == NULL) return NULL;
  d->c.type = NULL;
  return &d->c;
}

static bool raw_untyped_to_sample(
    const struct ddsi_sertype *type, const struct ddsi_serdata *d, void *sample, void **bufptr, void *buflim) {
  (void)type;
  (void)d;
  (void)bufptr;
  (void)buflim;
  struct sinew_raw_sample *s = sample;
  s->data = NULL;
  s->size = 0;
  return true;
}

static void raw_free(struct ddsi_serdata *dcmn) {
  struct sinew_raw_serdata *d = (struct sinew_raw_serdata *)dcmn;
  free(d->data);
  free(d);
}

static size_t raw_print(const struct ddsi_sertype *type, const struct ddsi_serdata *dcmn, char *buf, size_t size) {
  (void)type;
  return (size_t)snprintf(buf, size, "(%u serialised bytes)", ((const struct sinew_raw_serdata *)dcmn)->size);
}

static void raw_get_keyhash(const struct ddsi_serdata *d, struct ddsi_keyhash *buf, bool force_md5) {
  (void)d;
  (void)force_md5;
  memset(buf, 0, sizeof(*buf));
}

static const struct ddsi_serdata_ops raw_serdata_ops = {
    .eqkey = raw_eqkey,
    .get_size = raw_get_size,
    .from_ser = raw_from_ser,
    .from_ser_iov = raw_from_ser_iov,
    .from_keyhash = raw_from_keyhash,
    .from_sample = raw_from_sample,
    .to_ser = raw_to_ser,
    .to_ser_ref = raw_to_ser_ref,
    .to_ser_unref = raw_to_ser_unref,
    .to_sample = raw_to_sample,
    .to_untyped = raw_to_untyped,
    .untyped_to_sample = raw_untyped_to_sample,
    .free = raw_free,
    .print = raw_print,
    .get_keyhash = raw_get_keyhash,
};

static void raw_sertype_free(struct ddsi_sertype *tp) {
  ddsi_sertype_fini(tp);
  free(tp);
}

static void raw_zero_samples(const struct ddsi_sertype *d, void *samples, size_t count) {
  (void)d;
  memset(samples, 0, count * sizeof(struct sinew_raw_sample));
}

static void raw_realloc_samples(void **ptrs, const struct ddsi_sertype *d, void *old, size_t oldcount, size_t count) {
  (void)d;
  struct sinew_raw_sample *samples = realloc(old, count * sizeof(*samples));
  if (samples != NULL && count > oldcount) memset(samples + oldcount, 0, (count - oldcount) * sizeof(*samples));
  for (size_t i = 0; i < count; i++) ptrs[i] = samples ? &samples[i] : NULL;
}

static void raw_free_samples(const struct ddsi_sertype *d, void **ptrs, size_t count, dds_free_op_t op) {
  (void)d;
  // Samples only point into serdata they do not own; the array itself goes with DDS_FREE_ALL.
  if (count > 0 && (op & DDS_FREE_ALL_BIT)) free(ptrs[0]);
}

static bool raw_equal(const struct ddsi_sertype *a, const struct ddsi_sertype *b) {
  (void)a;
  (void)b;
  return true;
}

static uint32_t raw_hash(const struct ddsi_sertype *tp) {
  (void)tp;
  return 0x51e3u;
}

static size_t raw_get_serialized_size(const struct ddsi_sertype *d, const void *sample) {
  (void)d;
  return ((const struct sinew_raw_sample *)sample)->size;
}

static bool raw_serialize_into(const struct ddsi_sertype *d, const void *sample, void *dst, size_t dst_size) {
  (void)d;
  const struct sinew_raw_sample *s = sample;
  if (dst_size < s->size) return false;
  memcpy(dst, s->data, s->size);
  return true;
}

static const struct ddsi_sertype_ops raw_sertype_ops = {
    .version = ddsi_sertype_v0,
    .arg = NULL,
    .free = raw_sertype_free,
    .zero_samples = raw_zero_samples,
    .realloc_samples = raw_realloc_samples,
    .free_samples = raw_free_samples,
    .equal = raw_equal,
    .hash = raw_hash,
    .type_id = NULL,
    .type_map = NULL,
    .type_info = NULL,
    .derive_sertype = NULL,
    .get_serialized_size = raw_get_serialized_size,
    .serialize_into = raw_serialize_into,
};

struct ddsi_sertype *sinew_raw_sertype_new(const char *type_name) {
  struct ddsi_sertype *tp = calloc(1, sizeof(*tp));
  if (tp == NULL) return NULL;
  ddsi_sertype_init(tp, type_name, &raw_sertype_ops, &raw_serdata_ops, true);
  // Either representation may arrive; the decoder reads the encapsulation header.
  tp->allowed_data_representation = DDS_DATA_REPRESENTATION_FLAG_XCDR1 | DDS_DATA_REPRESENTATION_FLAG_XCDR2;
  return tp;
}

uint32_t sinew_raw_serdata_copy(const struct ddsi_serdata *d, uint8_t *buffer, uint32_t capacity) {
  if (d->ops != &raw_serdata_ops) return 0;
  const struct sinew_raw_serdata *raw = (const struct sinew_raw_serdata *)d;
  uint32_t n = raw->size < capacity ? raw->size : capacity;
  if (n > 0) memcpy(buffer, raw->data, n);
  return raw->size;
}
