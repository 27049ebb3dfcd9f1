// A thin C layer over Cyclone DDS (libddsc, Debian's cyclonedds-dev) for Sinew's ROS 2 node: a participant on a
// domain with an optional XML configuration, writers of the idlc-generated ROS 2 types (ros_messages.h), and
// readers (and, for tests and tools, writers) of *raw* samples: any topic and type name, the sample handed over as
// the serialised bytes it arrived as (the 4-byte encapsulation header first), for Sinew's own bounds-checked
// decoders. Raw readers carry no XTypes type information, so they match a writer by topic and type name alone, as
// ROS 2's own readers do.
#ifndef SINEW_DDS_H
#define SINEW_DDS_H

#include <stdint.h>
#include <stddef.h>
#include "dds/dds.h"
#include "ros_messages.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Quality of service of one endpoint (ROS 2's profiles are combinations of these).
typedef struct sinew_dds_qos {
  /// 1: reliable, 0: best effort.
  int32_t reliable;
  /// 1: transient local (late joiners get the last samples), 0: volatile.
  int32_t transient_local;
  /// History: keep last `depth` samples (>= 1).
  int32_t depth;
} sinew_dds_qos;

/// The ROS 2 types of ros_messages.idl, for `sinew_ros_descriptor`.
typedef enum sinew_ros_type {
  SINEW_ROS_JOINT_STATE,
  SINEW_ROS_TF_MESSAGE,
  SINEW_ROS_IMU,
  SINEW_ROS_DIAGNOSTIC_ARRAY,
  SINEW_ROS_STRING,
  SINEW_ROS_EMPTY,
  SINEW_ROS_JOINT_TRAJECTORY,
} sinew_ros_type;

/// The idlc-generated topic descriptor of `type` (a C global, so its address is stable).
const dds_topic_descriptor_t *sinew_ros_descriptor(sinew_ros_type type);

/// A participant on `domain_id`. `config_xml` (Cyclone's configuration, as CYCLONEDDS_URI would hold it) makes the
/// domain with it first (a domain this process made already keeps its first configuration); NULL leaves Cyclone to
/// its defaults and the CYCLONEDDS_URI environment variable.
/// Returns the participant (> 0) or a negative DDS return code.
dds_entity_t sinew_dds_participant(uint32_t domain_id, const char *config_xml);

/// A writer of an idlc-generated type on `topic` (the DDS topic name, "rt/…" for ROS 2), XCDR1 encoded.
dds_entity_t sinew_dds_typed_writer(
    dds_entity_t participant, const char *topic, const dds_topic_descriptor_t *descriptor, sinew_dds_qos qos);

/// A reader of raw samples of `type_name` on `topic`; accepts XCDR1 and XCDR2 writers.
dds_entity_t sinew_dds_raw_reader(dds_entity_t participant, const char *topic, const char *type_name, sinew_dds_qos qos);

/// A writer of raw samples of `type_name` on `topic` (tests, tools); `xcdr2` selects the representation it
/// announces (the bytes written must start with a matching encapsulation header).
dds_entity_t sinew_dds_raw_writer(
    dds_entity_t participant, const char *topic, const char *type_name, sinew_dds_qos qos, int32_t xcdr2);

/// Writes `size` serialised bytes (encapsulation header first, at least 4 bytes). Returns a DDS return code.
dds_return_t sinew_dds_write_raw(dds_entity_t writer, const uint8_t *bytes, uint32_t size);

/// What `sinew_dds_take_raw` returns with a sample.
typedef struct sinew_dds_sample_info {
  /// The sample's full serialised size, bytes (more than was copied when it did not fit).
  uint32_t size;
  /// The writer's source timestamp, ns since the Unix epoch.
  int64_t source_timestamp_ns;
  /// 1 for a sample with data; 0 for a notice without (a writer gone, disposed).
  int32_t valid_data;
} sinew_dds_sample_info;

/// Takes the oldest raw sample of `reader`, copying at most `capacity` of its bytes into `buffer`. Returns 1 with a
/// sample (`info` filled), 0 when none is waiting, a negative DDS return code on failure.
int32_t sinew_dds_take_raw(dds_entity_t reader, uint8_t *buffer, uint32_t capacity, sinew_dds_sample_info *info);

/// Subscriptions matched to `writer` right now (its `publication_matched` status), or a negative return code.
int32_t sinew_dds_matched_subscriptions(dds_entity_t writer);
/// Publications matched to `reader` right now, or a negative return code.
int32_t sinew_dds_matched_publications(dds_entity_t reader);

/// A waitset on `participant` with a guard condition attached (handle in `*guard`) that `sinew_dds_wake` triggers.
dds_entity_t sinew_dds_waitset(dds_entity_t participant, dds_entity_t *guard);
/// Attaches `reader`'s "data available" to `waitset` with `token` as its attachment.
dds_return_t sinew_dds_waitset_attach_reader(dds_entity_t waitset, dds_entity_t reader, int64_t token);
/// Waits up to `timeout_ns` for data or the guard; returns how many attachments triggered (0 on time-out).
int32_t sinew_dds_wait(dds_entity_t waitset, int64_t timeout_ns);
/// Triggers the guard condition (any thread), waking `sinew_dds_wait`; `sinew_dds_wait` resets it.
void sinew_dds_wake(dds_entity_t guard);
void sinew_dds_reset_guard(dds_entity_t guard);

/// Deletes an entity and everything it owns (a participant: its topics, readers, writers, waitsets).
dds_return_t sinew_dds_delete(dds_entity_t entity);

/// The text of a DDS return code.
const char *sinew_dds_error_text(dds_return_t code);

/// Builtin topic of the publications the participant discovered (DCPSPublication): a reader of it, and one sample
/// taken as its topic and type names (copied into the buffers, NUL-terminated). Returns 1 with a sample, 0 when none
/// waits, negative on failure. `alive` is 0 for a publication that went away.
dds_entity_t sinew_dds_publication_reader(dds_entity_t participant);
int32_t sinew_dds_take_publication(
    dds_entity_t reader, char *topic, uint32_t topic_capacity, char *type_name, uint32_t type_capacity, int32_t *alive);

#ifdef __cplusplus
}
#endif

#endif
