// Pure exports only (no file access): see ./node for loading solver files and writing snapshots.
export {
  Solver,
  planSolverNets,
  buildSolverNets,
  outputLossWeight,
  snapshotFormatOf,
  type SnapshotFormat,
  type SolverOptions,
  type SolverIO,
  type SolverCallback,
  type SnapshotWeightsAdapter,
  type SolverAction,
  type SnapshotData,
  type IterationInfo,
  type TestResult,
  type TestScore,
  type NetBuildOptions,
  type NetFactory,
  type GradientComputer,
  type PlannedNet,
} from './solver.js';
export { SGDSolver, sgdUpdate, type UpdateApplier } from './sgd-solver.js';
export { NesterovSolver, nesterovUpdate } from './nesterov-solver.js';
export { AdaGradSolver, adaGradUpdate } from './adagrad-solver.js';
export { RMSPropSolver, rmsPropUpdate } from './rmsprop-solver.js';
export { AdaDeltaSolver, adaDeltaUpdate } from './adadelta-solver.js';
export { AdamSolver, adamUpdate } from './adam-solver.js';
export {
  SolverRegistry,
  defaultSolverRegistry,
  registerBuiltinSolvers,
  createSolver,
  createSolverAsync,
  upgradeSolverAsNeeded,
  solverTypeOf,
  sgdSolverDef,
  nesterovSolverDef,
  adaGradSolverDef,
  rmsPropSolverDef,
  adaDeltaSolverDef,
  adamSolverDef,
  type SolverDef,
} from './solver-registry.js';
export { checkLrPolicy, learningRate, lrPolicies, LR_POLICY_NAMES, type LrPolicy, type LrPolicyParameter, type LrPolicyState } from './lr-policy.js';
export { formatG } from './format.js';
export { findNonFiniteParam, paramsFinite, type NonFiniteParam } from './non-finite.js';
export { SolverError, SolverConfigError, UnknownSolverTypeError, UnknownLrPolicyError, SolverStateError } from './errors.js';
