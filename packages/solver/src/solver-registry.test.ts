import { parseNetParameter } from '@caffe-ts/proto';
import { describe, expect, it } from 'vitest';
import { AdaDeltaSolver } from './adadelta-solver.js';
import { AdaGradSolver } from './adagrad-solver.js';
import { AdamSolver } from './adam-solver.js';
import { SolverConfigError, SolverError, UnknownSolverTypeError } from './errors.js';
import { NesterovSolver } from './nesterov-solver.js';
import { RMSPropSolver } from './rmsprop-solver.js';
import { SGDSolver } from './sgd-solver.js';
import {
  createSolver,
  createSolverAsync,
  defaultSolverRegistry,
  registerBuiltinSolvers,
  sgdSolverDef,
  SolverRegistry,
  solverTypeOf,
  upgradeSolverAsNeeded,
} from './solver-registry.js';
import { regressionNetText, sequentialFeed, solverParam, testRegistry } from './test-fixtures.js';

const options = () => ({ registry: testRegistry(sequentialFeed(2)), dtype: 'float64' as const, log: false });
const param = (props: Record<string, unknown>) =>
  solverParam({ net_param: parseNetParameter(regressionNetText(2)), base_lr: 0.05, lr_policy: 'fixed', max_iter: 20, ...props });

describe('SolverRegistry and createSolver', () => {
  it('chooses the class by type (default SGD) or by the deprecated solver_type enum', () => {
    const cases: [Record<string, unknown>, new (...a: never[]) => object][] = [
      [{}, SGDSolver],
      [{ type: 'Nesterov', momentum: 0.9 }, NesterovSolver],
      [{ type: 'AdaGrad' }, AdaGradSolver],
      [{ type: 'RMSProp' }, RMSPropSolver],
      [{ type: 'AdaDelta', momentum: 0.95, base_lr: 1 }, AdaDeltaSolver],
      [{ type: 'Adam', momentum: 0.9 }, AdamSolver],
      [{ solver_type: 5, momentum: 0.9 }, AdamSolver],
      [{ solver_type: 1 }, NesterovSolver],
    ];
    for (const [props, cls] of cases) expect(createSolver(param(props), options())).toBeInstanceOf(cls);
  });

  it('every solver type trains the tiny net (the loss goes down)', async () => {
    for (const type of ['SGD', 'Nesterov', 'AdaGrad', 'RMSProp', 'AdaDelta', 'Adam']) {
      const momentum = type === 'AdaGrad' || type === 'RMSProp' ? 0 : type === 'AdaDelta' ? 0.95 : 0.9;
      const s = createSolver(param({ type, momentum, base_lr: type === 'AdaDelta' ? 1 : 0.05 }), options());
      const losses: number[] = [];
      s.addCallback({ onIteration: (i) => losses.push(i.loss) });
      await s.step(20);
      const first = (losses[0]! + losses[1]!) / 2;
      const last = (losses[18]! + losses[19]!) / 2;
      expect(last, type).toBeLessThan(first);
      expect(s.type).toBe(type);
    }
  });

  it('rejects unknown types, listing the known ones', () => {
    expect(() => createSolver(param({ type: 'LBFGS' }), options())).toThrow(UnknownSolverTypeError);
    expect(() => createSolver(param({ type: 'LBFGS' }), options())).toThrow(
      'Unknown solver type: LBFGS (known types: AdaDelta, AdaGrad, Adam, Nesterov, RMSProp, SGD)',
    );
  });

  it('rejects solver_type and type together (Caffe\'s UpgradeSolverType check)', () => {
    expect(() => solverTypeOf(param({ type: 'SGD', solver_type: 2 }))).toThrow(
      'Failed to upgrade solver: old solver_type field (enum) and new type field (string) cannot be both specified in solver proto text.',
    );
  });

  it('upgradeSolverAsNeeded moves solver_type into type', () => {
    const p = param({ solver_type: 3 });
    expect(upgradeSolverAsNeeded(p, 'x.prototxt', { log: false })).toBe(true);
    expect(p.type).toBe('RMSProp');
    expect(Object.prototype.hasOwnProperty.call(p, 'solver_type')).toBe(false);
    expect(upgradeSolverAsNeeded(p, 'x.prototxt', { log: false })).toBe(false);
  });

  it('applies the solvers\' constructor checks with Caffe\'s messages', () => {
    expect(() => createSolver(param({ type: 'AdaGrad', momentum: 0.9 }), options())).toThrow(SolverConfigError);
    expect(() => createSolver(param({ type: 'AdaGrad', momentum: 0.9 }), options())).toThrow(/^Momentum cannot be used with AdaGrad\./);
    expect(() => createSolver(param({ type: 'RMSProp', momentum: 0.5 }), options())).toThrow(/^Momentum cannot be used with RMSProp\./);
    expect(() => createSolver(param({ type: 'RMSProp', rms_decay: 1 }), options())).toThrow(/^rms_decay should lie between 0 and 1\./);
  });

  it('register refuses duplicates unless overriding; the default registry is shared through globalThis', () => {
    const r = registerBuiltinSolvers(new SolverRegistry());
    expect(r.types()).toEqual(['AdaDelta', 'AdaGrad', 'Adam', 'Nesterov', 'RMSProp', 'SGD']);
    expect(() => r.register(sgdSolverDef)).toThrow(SolverError);
    expect(() => r.register(sgdSolverDef)).toThrow('Solver type SGD already registered.');
    r.register({ ...sgdSolverDef, create: (p, o) => new NesterovSolver(p, o) }, { override: true });
    expect(r.create(param({}), options())).toBeInstanceOf(NesterovSolver);
    expect(defaultSolverRegistry()).toBe((globalThis as Record<symbol, unknown>)[Symbol.for('caffe-ts.solverRegistry')]);
    expect(createSolver(param({}), { ...options(), solverRegistry: r })).toBeInstanceOf(NesterovSolver);
  });

  it('createSolverAsync builds the nets with Net.create and gives the same solver', async () => {
    const s = await createSolverAsync(param({ type: 'Adam', momentum: 0.9 }), options());
    expect(s).toBeInstanceOf(AdamSolver);
    await s.step(2);
    expect(s.iter).toBe(2);
    await expect(createSolverAsync(param({ type: 'Nope' }), options())).rejects.toThrow(UnknownSolverTypeError);
  });
});
