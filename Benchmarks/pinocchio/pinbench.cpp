// Pinocchio's C++ library (from the PyPI `pin` wheel), timed on one URDF the way `sinew bench kinematics`
// times Sinew, so that Benchmarks/kinematics-vs-pinocchio.sh can put the two side by side.
//
// Usage: pinbench URDF [--calls N] [--seed S]
// Prints one JSON line: model, nq, nv, then the median ns per call of forwardKinematics,
// framesForwardKinematics, computeFrameJacobian (deepest link, LOCAL_WORLD_ALIGNED), rnea, crba and aba,
// then the Jacobian's frame and Pinocchio's version.
//
// Each figure is the median over 7 runs of the mean time of N calls, cycling through 256 random
// configurations: every degree of freedom uniform in [-1, 1] (a continuous joint's angle too), velocities
// and accelerations (torques for aba) uniform in [-1, 1].
//
// The algorithms run from the wheel's compiled library (PINOCCHIO_ENABLE_TEMPLATE_INSTANTIATION makes the
// headers declare them extern), so this measures what a Pinocchio user gets, not our compiler's inlining.

#include <pinocchio/algorithm/aba.hpp>
#include <pinocchio/algorithm/crba.hpp>
#include <pinocchio/algorithm/frames.hpp>
#include <pinocchio/algorithm/joint-configuration.hpp>
#include <pinocchio/algorithm/kinematics.hpp>
#include <pinocchio/algorithm/rnea.hpp>
#include <pinocchio/multibody.hpp>
#include <pinocchio/parsers/urdf.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

namespace pin = pinocchio;

namespace {

// The link a caller means by "the end" of the robot, chosen as Sinew's RobotModel.deepestLink does: the
// child link of the moving joint with the most moving joints between it and the root (itself included),
// the first such in joint order on a tie. In Pinocchio that link is the first BODY frame carried by the joint.
pin::FrameIndex deepestLinkFrame(const pin::Model &model) {
  pin::JointIndex best = 0;
  int bestDepth = 0;
  for (pin::JointIndex j = 1; j < static_cast<pin::JointIndex>(model.njoints); ++j) {
    int depth = 0;
    for (pin::JointIndex k = j; k != 0; k = model.parents[k]) ++depth;
    if (depth > bestDepth) {
      best = j;
      bestDepth = depth;
    }
  }
  for (pin::FrameIndex f = 0; f < static_cast<pin::FrameIndex>(model.nframes); ++f) {
    const pin::Frame &frame = model.frames[f];
    if (frame.parentJoint == best && frame.type == pin::BODY) return f;
  }
  return static_cast<pin::FrameIndex>(model.nframes - 1);
}

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

volatile double sink;

// Median over 7 runs (after one warm-up run) of the mean ns per call of `body(i)`, i = 0..<calls.
template <class Body> double medianNanoseconds(long calls, Body body) {
  std::vector<double> runs;
  for (int run = -1; run < 7; ++run) {
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < calls; ++i) body(i);
    const auto end = std::chrono::steady_clock::now();
    if (run >= 0) runs.push_back(std::chrono::duration<double, std::nano>(end - start).count() / calls);
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

}  // namespace

int main(int argc, char **argv) {
  std::string urdf;
  long calls = 50000;
  unsigned long seed = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--calls") == 0 && i + 1 < argc) {
      calls = std::atol(argv[++i]);
    } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = std::strtoul(argv[++i], nullptr, 10);
    } else if (argv[i][0] != '-' && urdf.empty()) {
      urdf = argv[i];
    } else {
      urdf.clear();
      break;
    }
  }
  if (urdf.empty() || calls <= 0) {
    std::fprintf(stderr, "usage: %s URDF [--calls N] [--seed S]\n", argv[0]);
    return 2;
  }

  pin::Model model;
  try {
    // Fixed base; a mimic joint is its own degree of freedom (as in the reference values and in Sinew's bench).
    pin::urdf::buildModel(urdf, model, false, false);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "pinbench: %s: %s\n", urdf.c_str(), e.what());
    return 1;
  }
  pin::Data data(model);

  constexpr int count = 256;  // a power of two: sample i is i & (count - 1)
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  auto randomVector = [&](Eigen::Index n) {
    Eigen::VectorXd x(n);
    for (Eigen::Index k = 0; k < n; ++k) x[k] = unit(rng);
    return x;
  };
  const Eigen::VectorXd q0 = pin::neutral(model);
  std::vector<Eigen::VectorXd> qs, vs, as;
  for (int i = 0; i < count; ++i) {
    // Moving from the neutral configuration by a tangent vector in [-1, 1]^nv: for revolute and prismatic
    // joints the value itself, for a continuous joint (cos, sin) of an angle in [-1, 1].
    qs.push_back(pin::integrate(model, q0, randomVector(model.nv)));
    vs.push_back(randomVector(model.nv));
    as.push_back(randomVector(model.nv));
  }
  const pin::FrameIndex tip = deepestLinkFrame(model);
  pin::Data::Matrix6x J = pin::Data::Matrix6x::Zero(6, model.nv);
  auto at = [](long i) { return static_cast<size_t>(i & (count - 1)); };

  const double fk = medianNanoseconds(calls, [&](long i) { pin::forwardKinematics(model, data, qs[at(i)]); });
  sink = data.oMi[model.njoints - 1].translation()[0];
  const double framesFK =
      medianNanoseconds(calls, [&](long i) { pin::framesForwardKinematics(model, data, qs[at(i)]); });
  sink = data.oMf[tip].translation()[0];
  const double jacobian = medianNanoseconds(calls, [&](long i) {
    pin::computeFrameJacobian(model, data, qs[at(i)], tip, pin::LOCAL_WORLD_ALIGNED, J);
  });
  sink = J(0, 0);
  const double rnea =
      medianNanoseconds(calls, [&](long i) { pin::rnea(model, data, qs[at(i)], vs[at(i)], as[at(i)]); });
  sink = data.tau[0];
  const double crba = medianNanoseconds(calls, [&](long i) { pin::crba(model, data, qs[at(i)]); });
  sink = data.M(0, 0);
  const double aba =
      medianNanoseconds(calls, [&](long i) { pin::aba(model, data, qs[at(i)], vs[at(i)], as[at(i)]); });
  sink = data.ddq[0];

  std::printf(
      "{\"model\":%s,\"nq\":%d,\"nv\":%d,\"fk_ns\":%.1f,\"frames_fk_ns\":%.1f,\"frame_jacobian_ns\":%.1f,"
      "\"rnea_ns\":%.1f,\"crba_ns\":%.1f,\"aba_ns\":%.1f,\"jacobian_frame\":%s,\"pinocchio\":\"%s\"}\n",
      jsonString(model.name).c_str(), model.nq, model.nv, fk, framesFK, jacobian, rnea, crba, aba,
      jsonString(model.frames[tip].name).c_str(), PINOCCHIO_VERSION);
  return 0;
}
