#include <string.h>
#include <stdlib.h>
#include "sinew_dds.h"
#include "raw_sertype.h"

const dds_topic_descriptor_t *sinew_ros_descriptor(sinew_ros_type type) {
  switch (type) {
    case SINEW_ROS_JOINT_STATE: return &sensor_msgs_msg_dds__JointState__desc;
    case SINEW_ROS_TF_MESSAGE: return &tf2_msgs_msg_dds__TFMessage__desc;
    case SINEW_ROS_IMU: return &sensor_msgs_msg_dds__Imu__desc;
    case SINEW_ROS_DIAGNOSTIC_ARRAY: return &diagnostic_msgs_msg_dds__DiagnosticArray__desc;
    case SINEW_ROS_STRING: return &std_msgs_msg_dds__String__desc;
    case SINEW_ROS_EMPTY: return &std_msgs_msg_dds__Empty__desc;
    case SINEW_ROS_JOINT_TRAJECTORY: return &trajectory_msgs_msg_dds__JointTrajectory__desc;
  }
  return NULL;
}

dds_entity_t sinew_dds_participant(uint32_t domain_id, const char *config_xml) {
  if (config_xml != NULL) {
    dds_entity_t domain = dds_create_domain(domain_id, config_xml);
    // A domain this process has already made keeps the configuration it was made with.
    if (domain < 0 && domain != DDS_RETCODE_PRECONDITION_NOT_MET) return domain;
  }
  return dds_create_participant(domain_id, NULL, NULL);
}

static dds_qos_t *make_qos(sinew_dds_qos q) {
  dds_qos_t *qos = dds_create_qos();
  dds_qset_reliability(qos, q.reliable ? DDS_RELIABILITY_RELIABLE : DDS_RELIABILITY_BEST_EFFORT, DDS_MSECS(100));
  dds_qset_durability(qos, q.transient_local ? DDS_DURABILITY_TRANSIENT_LOCAL : DDS_DURABILITY_VOLATILE);
  dds_qset_history(qos, DDS_HISTORY_KEEP_LAST, q.depth > 0 ? q.depth : 1);
  return qos;
}

dds_entity_t sinew_dds_typed_writer(
    dds_entity_t participant, const char *topic, const dds_topic_descriptor_t *descriptor, sinew_dds_qos q) {
  dds_entity_t t = dds_create_topic(participant, descriptor, topic, NULL, NULL);
  if (t < 0) return t;
  dds_qos_t *qos = make_qos(q);
  // ROS 2 (rmw_cyclonedds) reads and writes XCDR1 only.
  dds_data_representation_id_t xcdr1[] = {DDS_DATA_REPRESENTATION_XCDR1};
  dds_qset_data_representation(qos, 1, xcdr1);
  dds_entity_t w = dds_create_writer(participant, t, qos, NULL);
  dds_delete_qos(qos);
  return w;
}

static dds_entity_t raw_topic(dds_entity_t participant, const char *topic, const char *type_name) {
  struct ddsi_sertype *st = sinew_raw_sertype_new(type_name);
  if (st == NULL) return DDS_RETCODE_OUT_OF_RESOURCES;
  dds_entity_t t = dds_create_topic_sertype(participant, topic, &st, NULL, NULL, NULL);
  if (t < 0) ddsi_sertype_free(st);
  return t;
}

dds_entity_t sinew_dds_raw_reader(dds_entity_t participant, const char *topic, const char *type_name, sinew_dds_qos q) {
  dds_entity_t t = raw_topic(participant, topic, type_name);
  if (t < 0) return t;
  dds_qos_t *qos = make_qos(q);
  dds_data_representation_id_t both[] = {DDS_DATA_REPRESENTATION_XCDR1, DDS_DATA_REPRESENTATION_XCDR2};
  dds_qset_data_representation(qos, 2, both);
  dds_entity_t r = dds_create_reader(participant, t, qos, NULL);
  dds_delete_qos(qos);
  return r;
}

dds_entity_t sinew_dds_raw_writer(
    dds_entity_t participant, const char *topic, const char *type_name, sinew_dds_qos q, int32_t xcdr2) {
  dds_entity_t t = raw_topic(participant, topic, type_name);
  if (t < 0) return t;
  dds_qos_t *qos = make_qos(q);
  dds_data_representation_id_t one[] = {xcdr2 ? DDS_DATA_REPRESENTATION_XCDR2 : DDS_DATA_REPRESENTATION_XCDR1};
  dds_qset_data_representation(qos, 1, one);
  dds_entity_t w = dds_create_writer(participant, t, qos, NULL);
  dds_delete_qos(qos);
  return w;
}

dds_return_t sinew_dds_write_raw(dds_entity_t writer, const uint8_t *bytes, uint32_t size) {
  struct sinew_raw_sample sample = {bytes, size};
  return dds_write(writer, &sample);
}

int32_t sinew_dds_take_raw(dds_entity_t reader, uint8_t *buffer, uint32_t capacity, sinew_dds_sample_info *info) {
  struct ddsi_serdata *serdata = NULL;
  dds_sample_info_t si;
  dds_return_t n = dds_takecdr(reader, &serdata, 1, &si, DDS_ANY_STATE);
  if (n <= 0) return n;
  info->valid_data = si.valid_data ? 1 : 0;
  info->source_timestamp_ns = si.source_timestamp;
  info->size = si.valid_data ? sinew_raw_serdata_copy(serdata, buffer, capacity) : 0;
  ddsi_serdata_unref(serdata);
  return 1;
}

int32_t sinew_dds_matched_subscriptions(dds_entity_t writer) {
  dds_publication_matched_status_t status;
  dds_return_t rc = dds_get_publication_matched_status(writer, &status);
  return rc < 0 ? rc : (int32_t)status.current_count;
}

int32_t sinew_dds_matched_publications(dds_entity_t reader) {
  dds_subscription_matched_status_t status;
  dds_return_t rc = dds_get_subscription_matched_status(reader, &status);
  return rc < 0 ? rc : (int32_t)status.current_count;
}

dds_entity_t sinew_dds_waitset(dds_entity_t participant, dds_entity_t *guard) {
  dds_entity_t ws = dds_create_waitset(participant);
  if (ws < 0) return ws;
  dds_entity_t g = dds_create_guardcondition(participant);
  if (g < 0) return g;
  dds_return_t rc = dds_waitset_attach(ws, g, 0);
  if (rc < 0) return rc;
  *guard = g;
  return ws;
}

dds_return_t sinew_dds_waitset_attach_reader(dds_entity_t waitset, dds_entity_t reader, int64_t token) {
  dds_entity_t cond = dds_create_readcondition(reader, DDS_ANY_STATE);
  if (cond < 0) return cond;
  return dds_waitset_attach(waitset, cond, (dds_attach_t)token);
}

int32_t sinew_dds_wait(dds_entity_t waitset, int64_t timeout_ns) {
  return dds_waitset_wait(waitset, NULL, 0, timeout_ns);
}

void sinew_dds_wake(dds_entity_t guard) { dds_set_guardcondition(guard, true); }

void sinew_dds_reset_guard(dds_entity_t guard) { dds_set_guardcondition(guard, false); }

dds_return_t sinew_dds_delete(dds_entity_t entity) { return dds_delete(entity); }

const char *sinew_dds_error_text(dds_return_t code) { return dds_strretcode(code); }

dds_entity_t sinew_dds_publication_reader(dds_entity_t participant) {
  return dds_create_reader(participant, DDS_BUILTIN_TOPIC_DCPSPUBLICATION, NULL, NULL);
}

static void copy_text(char *to, uint32_t capacity, const char *from) {
  if (capacity == 0) return;
  size_t n = from ? strlen(from) : 0;
  if (n >= capacity) n = capacity - 1;
  if (n > 0) memcpy(to, from, n);
  to[n] = 0;
}

int32_t sinew_dds_take_publication(
    dds_entity_t reader, char *topic, uint32_t topic_capacity, char *type_name, uint32_t type_capacity, int32_t *alive) {
  void *samples[1] = {NULL};
  dds_sample_info_t si;
  dds_return_t n = dds_take(reader, samples, &si, 1, 1);
  if (n <= 0) return n;
  const dds_builtintopic_endpoint_t *endpoint = samples[0];
  copy_text(topic, topic_capacity, si.valid_data ? endpoint->topic_name : NULL);
  copy_text(type_name, type_capacity, si.valid_data ? endpoint->type_name : NULL);
  *alive = si.instance_state == DDS_IST_ALIVE ? 1 : 0;
  dds_return_loan(reader, samples, n);
  return 1;
}
