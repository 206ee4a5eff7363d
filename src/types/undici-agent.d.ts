// undici's Agent on its own (see src/remote/fetcher.ts): the module that
// `undici`'s index re-exports, typed as that export.
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';
  const AgentClass: typeof Agent;
  export default AgentClass;
}
