import type { ListenerSettings, ProxyState } from './proxy-state.js';

/**
 * What a listener's handlers read at the start of each request: its settings
 * and the whole proxy state of the same config version, swapped together as
 * one object so they can never disagree.
 */
export interface ListenerView {
  readonly settings: ListenerSettings;
  readonly state: ProxyState;
}

/** The mutable pointer a listener's handlers read; replaced on config swap. */
export interface ListenerViewRef {
  view: ListenerView;
}
