export { classifyAddress, type AddressVerdict } from "./address.js";
export {
  EgressClient,
  redactUrl,
  type EgressCode,
  type EgressDecision,
  type EgressOptions,
  type EgressRequestInit,
  type EgressResponse,
  type EgressStream,
  type OperatorDestination,
  type Resolver,
} from "./client.js";
