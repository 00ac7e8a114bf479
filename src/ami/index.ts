/**
 * AMI stage: framing, lazy parsing, actions, event lists, keepalive and reconnect.
 * Everything other stages need comes from here.
 */
export type {
  AmiMessage,
  AmiActionFields,
  AmiResponse,
  AmiConnectionState,
  RemoteAddress,
  AmiFrameDrop,
  AmiLoginErrorKind,
  AmiClientStats,
  AmiHealth,
  AmiSecurityCheck,
  AmiPort,
} from './types.js';
export { maskReadsSecurity } from './security-check.js';
export { probeSecurity, type ProbeResult, type ProbeOptions } from './probe.js';
export { AmiClient, legacyCommandOutput, type AmiClientOptions, type AmiActionOptions, type AmiClientEvents } from './client.js';
export { AmiLoginError, AmiActionError, type AmiActionErrorKind } from './errors.js';
export { AmiFramer, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_HEADERS, MAX_GREETING_BYTES, type AmiFramerOptions, type AmiFramerHandlers } from './framer.js';
export { AmiFrame, parseFrame } from './message.js';
export { messageToDict } from './to-dict.js';
export { splitTranscript, type TranscriptFrame } from './transcript.js';
export { buildAction, actionName, actionHeaders } from './action.js';
export {
  buildCallerAction,
  judgeAction,
  callerAction,
  resolveActionPolicy,
  validateActionPolicyAllow,
  BUILTIN_DENIED_ACTIONS,
  MAX_ACTION_HEADERS,
  MAX_ACTION_LINE_BYTES,
  type ActionPolicy,
  type ActionPolicyInput,
} from './policy.js';
export {
  ActionRefusedError,
  judgeApplication,
  judgeCliWords,
  judgeVariableName,
  separateArgs,
  BUILTIN_DENIED_APPLICATIONS,
  BUILTIN_ALLOWED_FUNCTIONS,
  BUILTIN_DENIED_VARIABLES,
  type DialplanPolicy,
} from './dialplan-policy.js';
export { judgeAgiCommand, parseAgiArgs } from './agi-policy.js';
export { parsePort, parseRemoteAddress } from './address.js';
