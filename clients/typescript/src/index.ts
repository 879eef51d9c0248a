export {
  Approvals,
  Inbox,
  outcome,
  GRACE_SECONDS,
  LONG_POLL_SECONDS,
  WITHDRAW_SECONDS,
  type ApprovalsOptions,
  type RequestOptions,
  type RequireApprovalOptions,
  type DecideOptions,
  type EventFilters,
  type InboxFilters,
  type InboxChange,
  type Approval,
  type ApprovalCreate,
  type DecisionBody,
  type EventIn,
  type EventOut,
  type ErrorBody,
} from "./client.js";
export { type Decision, NOT_EXECUTABLE, approvedArguments, decisionFromJson } from "./decision.js";
export { argumentsDigest, canonicalJson } from "./digest.js";
export {
  ApprovalsError,
  NotApproved,
  Rejected,
  Answered,
  Expired,
  Withdrawn,
  InvalidWebhook,
  URL_SETTING,
  KEY_SETTING,
} from "./errors.js";
export { DEFAULT_URL } from "./http.js";
export { verifyWebhook } from "./webhook.js";
export type { components, paths, operations } from "./generated/openapi.js";
