import { compileChatTemplate, PLAIN_CONTINUATION_TEMPLATE, type ChatMessage, type ChatTemplate, type RenderOptions } from './chat-template.ts'

/**
 * Messages to prompt text, the one way tabmesh does it: the site's chat, the embed and
 * `tabmesh chat --system/--chat` all come here, so one conversation gives one prompt everywhere.
 * The model's own chat template renders it; a model without one (the llama2.c story models such
 * as stories260K) gets the plain continuation, which is just the messages' text.
 */
export interface PromptOptions {
  /** A system message to open the conversation with; when the messages already open with one, theirs stays. */
  system?: string
  /** End with the template's opening of the assistant's turn, so that the model writes the reply (default true). */
  addGenerationPrompt?: boolean
  /** BOS as text (default none: the tokenizer adds the BOS token, so the template must not write it as text too). */
  bosToken?: string
  /** EOS as text, for templates that close turns with it (default none). */
  eosToken?: string
  tools?: RenderOptions['tools']
  /** More variables for the template (date_string, enable_thinking...). */
  variables?: RenderOptions['variables']
}

let plain: ChatTemplate | undefined

/** The plain-continuation template, compiled once: what a model with no chat template of its own gets. */
export function plainContinuation(): ChatTemplate {
  return (plain ??= compileChatTemplate(PLAIN_CONTINUATION_TEMPLATE, 'plain continuation'))
}

/** The prompt for `messages` with `template` (the plain continuation when it is undefined: the model has none). */
export function buildPrompt(template: ChatTemplate | undefined, messages: readonly ChatMessage[], options: PromptOptions = {}): string {
  const { system, addGenerationPrompt = true, bosToken = '', eosToken = '', tools, variables } = options
  // copies: a template may change what it is given (list.append), the caller's messages stay as they were
  const conversation = messages.map((m) => ({ ...m }))
  if (system !== undefined && conversation[0]?.role !== 'system') conversation.unshift({ role: 'system', content: system })
  return (template ?? plainContinuation()).render(conversation, { addGenerationPrompt, bosToken, eosToken, tools, variables })
}
