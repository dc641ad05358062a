// llm_guardrail (a benchmark peer) ships no types.
declare module "llm_guardrail" {
  export function checkAll(text: string): Promise<unknown>;
}
