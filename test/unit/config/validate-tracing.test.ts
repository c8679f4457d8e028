import { expect } from 'chai';
import { editBase, errorsOf } from './helpers.js';

describe('config validation: Listener.tracing', () => {
  it('accepts a ratio in [0, 1] and disabled alone', () => {
    for (const tracing of [{ sampling: 0 }, { sampling: 0.01 }, { sampling: 1 }, { disabled: true }, {}]) {
      const docs = editBase((find) => void Object.assign(find('Listener', 'main'), { tracing }));
      expect(errorsOf(docs), JSON.stringify(tracing)).to.deep.equal([]);
    }
  });

  it('refuses a ratio outside [0, 1], a ratio beside disabled, and a ratio that is not a number, with the field path', () => {
    const errs = (tracing: unknown): string[] => errorsOf(editBase((find) => void Object.assign(find('Listener', 'main'), { tracing })));
    expect(errs({ sampling: 1.5 })).to.deep.equal(['Listener/main: spec.tracing.sampling: a ratio in [0, 1] expected, got 1.5']);
    expect(errs({ sampling: -0.1 })).to.deep.equal(['Listener/main: spec.tracing.sampling: a ratio in [0, 1] expected, got -0.1']);
    expect(errs({ sampling: 'NaN' })).to.deep.equal(['Listener/main: spec.tracing.sampling: a ratio in [0, 1] expected, got NaN']);
    expect(errs({ disabled: true, sampling: 0.5 })).to.deep.equal(['Listener/main: spec.tracing.sampling: not used when tracing.disabled is true: remove one of them']);
    const typo = errs({ sampling: 'half' });
    expect(typo).to.have.length(1);
    expect(typo[0]).to.match(/^Listener\/main: spec\.tracing\.sampling: /);
  });
});
