/**
 * Chat templates: turning a conversation into the prompt text the model was trained on. A model's
 * chat template (tokenizer_config.json chat_template, GGUF tokenizer.chat_template) is a Jinja
 * program; this room compiles and renders it (chat-template.ts and its lexer, parser and
 * interpreter) and builds prompts with it (prompt.ts), with a plain continuation of the messages'
 * text for models that have none.
 */
export { compileChatTemplate, PLAIN_CONTINUATION_TEMPLATE, type ChatMessage, type ChatTemplate, type RenderOptions } from './chat-template.ts'
export { buildPrompt, plainContinuation, type PromptOptions } from './prompt.ts'
