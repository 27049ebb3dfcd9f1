// Model construction and workspace allocation: the only place in CKinematics that allocates.
#include "model.hpp"

#include <new>

using namespace sk;

Mat6 Inertia::matrix() const {
    Mat6 M;
    Mat3 hx;
    hx << 0, -h.z(), h.y(), h.z(), 0, -h.x(), -h.y(), h.x(), 0;
    M.topLeftCorner<3, 3>() = mass * Mat3::Identity();
    M.topRightCorner<3, 3>() = -hx;
    M.bottomLeftCorner<3, 3>() = hx;
    M.bottomRightCorner<3, 3>() = I;
    return M;
}

static AxisKind classifyAxis(const Vec3 &axis, double &sign) {
    for (int k = 0; k < 3; ++k) {
        if (std::abs(std::abs(axis[k]) - 1.0) < 1e-15 && std::abs(axis[(k + 1) % 3]) < 1e-15 &&
            std::abs(axis[(k + 2) % 3]) < 1e-15) {
            sign = axis[k] > 0 ? 1.0 : -1.0;
            return static_cast<AxisKind>(k);
        }
    }
    sign = 1.0;
    return AxisKind::General;
}

extern "C" sk_model *sk_model_create(const sk_body_desc *bodies, int32_t nbodies, const sk_frame_desc *frames,
                                     int32_t nframes, const double gravity[3]) {
    if (nbodies < 0 || nframes < 0) return nullptr;
    sk_model *model = new (std::nothrow) sk_model();
    if (!model) return nullptr;
    model->nv = nbodies;
    model->gravity = Vec3(gravity[0], gravity[1], gravity[2]);
    model->bodies.resize(nbodies);
    model->support.resize(nbodies);
    for (int i = 0; i < nbodies; ++i) {
        const sk_body_desc &d = bodies[i];
        if (d.parent >= i || d.parent < -1 || (d.type != SK_JOINT_REVOLUTE && d.type != SK_JOINT_PRISMATIC)) {
            delete model;
            return nullptr;
        }
        Body &b = model->bodies[i];
        b.parent = d.parent;
        b.type = d.type;
        readPose(d.placement, b.placementR, b.placementP);
        b.axis = Vec3(d.axis[0], d.axis[1], d.axis[2]).normalized();
        b.axisKind = classifyAxis(b.axis, b.axisSign);
        if (b.parent >= 0) model->support[i] = model->support[b.parent];
        model->support[i].push_back(i);
    }
    model->frames.resize(nframes);
    for (int f = 0; f < nframes; ++f) {
        const sk_frame_desc &d = frames[f];
        if (d.body < -1 || d.body >= nbodies) {
            delete model;
            return nullptr;
        }
        Frame &fr = model->frames[f];
        fr.body = d.body;
        readPose(d.placement, fr.R, fr.p);
        if (d.body < 0 || d.mass <= 0) continue;
        // Lump the frame's inertia into its body: first about the frame's origin in its own axes, then moved.
        Inertia local;
        local.mass = d.mass;
        const Vec3 c(d.com[0], d.com[1], d.com[2]);
        local.h = d.mass * c;
        Mat3 Ic;
        Ic << d.inertia[0], d.inertia[1], d.inertia[2], d.inertia[1], d.inertia[3], d.inertia[4], d.inertia[2],
            d.inertia[4], d.inertia[5];
        local.I = Ic + d.mass * (c.squaredNorm() * Mat3::Identity() - c * c.transpose());
        const Inertia moved = local.toParent(fr.R, fr.p);
        Inertia &acc = model->bodies[d.body].inertia;
        acc.mass += moved.mass;
        acc.h += moved.h;
        acc.I += moved.I;
    }
    return model;
}

extern "C" void sk_model_destroy(sk_model *model) { delete model; }
extern "C" int32_t sk_model_nv(const sk_model *model) { return model->nv; }
extern "C" int32_t sk_model_nframes(const sk_model *model) { return static_cast<int32_t>(model->frames.size()); }

extern "C" sk_data *sk_data_create(const sk_model *model) {
    sk_data *data = new (std::nothrow) sk_data();
    if (!data) return nullptr;
    const size_t n = model->bodies.size();
    const size_t nf = model->frames.size();
    data->liR.assign(n, Mat3::Identity());
    data->oR.assign(n, Mat3::Identity());
    for (auto *v : {&data->lip, &data->op, &data->vLin, &data->vAng, &data->aLin, &data->aAng, &data->fLin,
                    &data->fAng})
        v->assign(n, Vec3::Zero());
    data->framePoses.assign(nf * 12, 0.0);
    for (size_t f = 0; f < nf; ++f) {
        const Frame &fr = model->frames[f];
        if (fr.body < 0) writePose(fr.R, fr.p, &data->framePoses[12 * f]);
    }
    data->composite.assign(n, Inertia());
    data->articulated.assign(n, Mat6::Zero());
    for (auto *v : {&data->biasForce, &data->biasAcc, &data->U}) v->assign(n, Vec6::Zero());
    data->Dinv.assign(n, 0.0);
    data->u.assign(n, 0.0);
    data->stepMatrix = Eigen::MatrixXd::Zero(n, n);
    data->stepSolution = Eigen::VectorXd::Zero(n);
    data->stepBias = Eigen::VectorXd::Zero(n);
    data->zeroAcceleration = Eigen::VectorXd::Zero(n);
    data->ikQ.assign(n, 0.0);
    data->ikQTrial.assign(n, 0.0);
    data->ikStep.assign(n, 0.0);
    data->ikJacobian.assign(6 * n, 0.0);
    data->ikReduced.assign(6 * n, 0.0);
    data->ikLower.assign(n, 0.0);
    data->ikUpper.assign(n, 0.0);
    data->ikActive.assign(n, 0);
    return data;
}

extern "C" void sk_data_destroy(sk_data *data) { delete data; }
