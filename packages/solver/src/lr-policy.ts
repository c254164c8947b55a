import { SolverConfigError, UnknownLrPolicyError } from './errors.js';

/**
 * The SolverParameter fields a learning-rate policy reads (snake_case, as in caffe.proto), so the
 * policies can be used, and tested, with a plain object as well as a decoded SolverParameter.
 */
export interface LrPolicyParameter {
  lr_policy: string;
  base_lr: number;
  gamma: number;
  power: number;
  stepsize: number;
  stepvalue: readonly number[];
  max_iter: number;
}

/** Where a schedule stands: the iteration and, for step/multistep, the step reached so far. */
export interface LrPolicyState {
  iter: number;
  /** Caffe's current_step_ (saved in the SolverState so that multistep resumes correctly). */
  currentStep: number;
}

/** A policy returns the rate and the (possibly advanced) current step. */
export type LrPolicy = (param: LrPolicyParameter, state: LrPolicyState) => { rate: number; currentStep: number };

function requireGammaNonNegative(param: LrPolicyParameter): void {
  if (!(param.gamma >= 0)) {
    throw new SolverConfigError(`lr_policy '${param.lr_policy}' needs gamma >= 0 (got ${param.gamma})`, { field: 'gamma' });
  }
}

function requireStepsize(param: LrPolicyParameter): void {
  if (!(param.stepsize > 0)) {
    throw new SolverConfigError(`lr_policy '${param.lr_policy}' needs stepsize > 0 (got ${param.stepsize})`, { field: 'stepsize' });
  }
}

/** Caffe's seven policies (SGDSolver::GetLearningRate). `iter` is the number of updates done. */
export const lrPolicies: Readonly<Record<string, LrPolicy>> = Object.freeze({
  fixed: (p, s) => ({ rate: p.base_lr, currentStep: s.currentStep }),
  step: (p, s) => {
    requireStepsize(p);
    requireGammaNonNegative(p);
    const currentStep = Math.floor(s.iter / p.stepsize);
    return { rate: p.base_lr * Math.pow(p.gamma, currentStep), currentStep };
  },
  exp: (p, s) => {
    requireGammaNonNegative(p);
    return { rate: p.base_lr * Math.pow(p.gamma, s.iter), currentStep: s.currentStep };
  },
  inv: (p, s) => {
    requireGammaNonNegative(p);
    return { rate: p.base_lr * Math.pow(1 + p.gamma * s.iter, -p.power), currentStep: s.currentStep };
  },
  multistep: (p, s) => {
    // As in Caffe, the step advances by at most one per call, when iter reaches the next stepvalue;
    // a restored current_step therefore carries the schedule across a resume.
    let currentStep = s.currentStep;
    if (currentStep < p.stepvalue.length && s.iter >= p.stepvalue[currentStep]!) currentStep++;
    requireGammaNonNegative(p);
    return { rate: p.base_lr * Math.pow(p.gamma, currentStep), currentStep };
  },
  poly: (p, s) => ({
    rate: p.base_lr * Math.pow(1 - s.iter / p.max_iter, p.power),
    currentStep: s.currentStep,
  }),
  sigmoid: (p, s) => {
    requireGammaNonNegative(p);
    requireStepsize(p);
    return { rate: p.base_lr / (1 + Math.exp(-p.gamma * (s.iter - p.stepsize))), currentStep: s.currentStep };
  },
});

/** Names of the known policies, in Caffe's documentation order. */
export const LR_POLICY_NAMES: readonly string[] = Object.freeze(Object.keys(lrPolicies));

/**
 * Throws UnknownLrPolicyError (Caffe: "Unknown learning rate policy: X", listing the known ones)
 * unless `param.lr_policy` names a policy. Caffe finds this at the first iteration; file loaders
 * call it before building any net, so the error can point at the solver file.
 */
export function checkLrPolicy(param: Pick<LrPolicyParameter, 'lr_policy'>): LrPolicy {
  const policy = Object.prototype.hasOwnProperty.call(lrPolicies, param.lr_policy) ? lrPolicies[param.lr_policy] : undefined;
  if (!policy) {
    throw new UnknownLrPolicyError(
      `Unknown learning rate policy: ${param.lr_policy === '' ? '(empty; set lr_policy)' : param.lr_policy} ` +
        `(known policies: ${LR_POLICY_NAMES.join(', ')})`,
      { field: 'lr_policy' },
    );
  }
  return policy;
}

/**
 * The learning rate at `state.iter` under `param.lr_policy`. An unknown policy throws
 * UnknownLrPolicyError (see checkLrPolicy).
 */
export function learningRate(param: LrPolicyParameter, state: LrPolicyState): { rate: number; currentStep: number } {
  return checkLrPolicy(param)(param, state);
}
