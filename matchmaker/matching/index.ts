/**
 * The matching problem of the federation, pure: Offers and Requests (as the matchmaker
 * cluster holds them, in `peer-<peer>` namespaces) -> solver instance -> answer ->
 * desired Assignments -> Offer and Request status. Used by `pcloud match` and by the
 * matchmaker controller's pass.
 */
export {
  assignmentKeyOf,
  boundFor,
  buildInstance,
  decodeAnswer,
  exclusionKey,
  offeredUnits,
  trusted,
  type MatchInput,
  type MatchInstance,
  type Placed,
  type RequestRef,
} from './instance.js';
export { API_VERSION, desiredAssignment, placementKey, type DesiredAssignment } from './assignments.js';
export { Matcher, match, solveInstance, type Matching } from './match.js';
export {
  HostReportReasons,
  OfferReasons,
  PEER_MISMATCH,
  TOO_LARGE,
  checkHostReport,
  tooLargeStatus,
  type Refusal,
  type RequestTrust,
  SatisfiedReasons,
  offerStatuses,
  peerMismatchStatus,
  placementVms,
  requestStatus,
  satisfied,
} from './status.js';
