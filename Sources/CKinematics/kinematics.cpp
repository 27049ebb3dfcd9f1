// Forward kinematics: world pose of every body, then of every frame.
#include "model.hpp"

using namespace sk;

extern "C" void sk_forward_kinematics_bodies(const sk_model *model, sk_data *data, const double *q) {
    const int n = model->nv;
    for (int i = 0; i < n; ++i) {
        const Body &b = model->bodies[i];
        jointPlacement(b, q[i], data->liR[i], data->lip[i]);
        if (b.parent < 0) {
            data->oR[i] = data->liR[i];
            data->op[i] = data->lip[i];
        } else {
            data->oR[i].noalias() = data->oR[b.parent] * data->liR[i];
            data->op[i].noalias() = data->oR[b.parent] * data->lip[i];
            data->op[i] += data->op[b.parent];
        }
    }
}

extern "C" void sk_forward_kinematics(const sk_model *model, sk_data *data, const double *q) {
    sk_forward_kinematics_bodies(model, data, q);
    const int nf = static_cast<int>(model->frames.size());
    double *out = data->framePoses.data();
    for (int f = 0; f < nf; ++f) {
        const Frame &fr = model->frames[f];
        if (fr.body < 0) continue;  // written once at sk_data_create
        const Mat3 &R = data->oR[fr.body];
        const Mat3 Rf = R * fr.R;
        const Vec3 pf = R * fr.p + data->op[fr.body];
        writePose(Rf, pf, out + 12 * f);
    }
}

extern "C" void sk_frame_pose(const sk_data *data, int32_t frame, double out_pose[12]) {
    const double *src = data->framePoses.data() + 12 * frame;
    for (int k = 0; k < 12; ++k) out_pose[k] = src[k];
}

extern "C" const double *sk_frame_poses(const sk_data *data) { return data->framePoses.data(); }
