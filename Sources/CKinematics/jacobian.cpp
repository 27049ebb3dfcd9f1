// Frame Jacobian, LOCAL_WORLD_ALIGNED: kinematics along the frame's support only, then one column per joint.
#include "model.hpp"

#include <cstring>

using namespace sk;

namespace sk {
// World poses of the bodies supporting `body` (root first); other bodies keep stale values.
void supportKinematics(const sk_model *model, sk_data *data, const double *q, int body) {
    if (body < 0) return;
    for (int i : model->support[body]) {
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

// Jacobian columns for a point at world position pf carried by `body`, whose support poses are current.
void jacobianColumns(const sk_model *model, const sk_data *data, int body, const Vec3 &pf, double *J) {
    std::memset(J, 0, sizeof(double) * 6 * model->nv);
    if (body < 0) return;
    for (int j : model->support[body]) {
        const Body &b = model->bodies[j];
        const Vec3 aw = data->oR[j] * b.axis;
        double *col = J + 6 * j;
        if (b.type == SK_JOINT_PRISMATIC) {
            col[0] = aw.x();
            col[1] = aw.y();
            col[2] = aw.z();
        } else {
            const Vec3 v = aw.cross(pf - data->op[j]);
            col[0] = v.x();
            col[1] = v.y();
            col[2] = v.z();
            col[3] = aw.x();
            col[4] = aw.y();
            col[5] = aw.z();
        }
    }
}
}  // namespace sk

extern "C" void sk_frame_jacobian(const sk_model *model, sk_data *data, const double *q, int32_t frame,
                                  double *jacobian) {
    const Frame &fr = model->frames[frame];
    supportKinematics(model, data, q, fr.body);
    Vec3 pf = fr.p;
    if (fr.body >= 0) pf = data->oR[fr.body] * fr.p + data->op[fr.body];
    jacobianColumns(model, data, fr.body, pf, jacobian);
}
