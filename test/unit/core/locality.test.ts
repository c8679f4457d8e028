import { expect } from 'chai';
import { localityFromLabels, parseLocality } from '../../../src/core/locality.js';

describe('locality', () => {
  it('--locality takes region, region/zone or region/zone/subZone', () => {
    expect(parseLocality('eu-west-1')).to.deep.equal({ region: 'eu-west-1', zone: '', subZone: '', key: 'eu-west-1//' });
    expect(parseLocality('eu-west-1/eu-west-1b').key).to.equal('eu-west-1/eu-west-1b/');
    expect(parseLocality('r/z/s')).to.deep.include({ region: 'r', zone: 'z', subZone: 's' });
    expect(() => parseLocality('a/b/c/d')).to.throw(/region\[\/zone\[\/subZone\]\]/);
    expect(() => parseLocality('/z')).to.throw();
  });

  it('from node labels: Kubernetes topology labels, or Istio\'s istio-locality', () => {
    expect(localityFromLabels({ 'topology.kubernetes.io/region': 'r', 'topology.kubernetes.io/zone': 'z', 'topology.istio.io/subzone': 's' })?.key).to.equal('r/z/s');
    expect(localityFromLabels({ 'istio-locality': 'us-east1.us-east1-b' })?.key).to.equal('us-east1/us-east1-b/');
    expect(localityFromLabels({ app: 'web' })).to.equal(undefined);
  });
});
