import { describe, expect, it } from 'vitest'
import { buildPrompt, compileChatTemplate, PLAIN_CONTINUATION_TEMPLATE, plainContinuation } from './index.ts'

// As published in the models' tokenizer_config.json files (the same fixtures as chat-template.test.ts).
const SMOLLM2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
const LLAMA3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"

describe('buildPrompt', () => {
  it('a system prompt and a user message in a ChatML template, ending where the assistant replies', () => {
    const t = compileChatTemplate(SMOLLM2)
    expect(buildPrompt(t, [{ role: 'user', content: 'Hi there' }], { system: 'Be brief.' })).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n')
    // without one, the template's own default system prompt
    expect(buildPrompt(t, [{ role: 'user', content: 'Hi there' }])).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n')
  })

  it('Llama-3: no BOS text by default (the tokenizer adds BOS), the generation prompt can be left off', () => {
    const t = compileChatTemplate(LLAMA3)
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there' }]
    expect(buildPrompt(t, messages)).toBe(
      '<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n')
    expect(buildPrompt(t, messages, { addGenerationPrompt: false, bosToken: '<|begin_of_text|>' })).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>')
    // the conversation's own system message stays; the option does not add a second one
    expect(buildPrompt(t, messages, { system: 'Other.' })).toBe(buildPrompt(t, messages))
  })

  it('a model without a template: the plain continuation, the messages\' text and nothing else', () => {
    const story = [{ role: 'user', content: 'Once upon a time' }, { role: 'assistant', content: ', there was' }]
    expect(buildPrompt(undefined, story)).toBe('Once upon a time, there was')
    expect(buildPrompt(undefined, story, { system: 'Lily ' })).toBe('Lily Once upon a time, there was')
    expect(buildPrompt(compileChatTemplate(PLAIN_CONTINUATION_TEMPLATE), story)).toBe(buildPrompt(undefined, story))
    expect(plainContinuation().source).toBe(PLAIN_CONTINUATION_TEMPLATE)
    expect(plainContinuation()).toBe(plainContinuation())
  })

  it('leaves the caller\'s messages as they were', () => {
    const t = compileChatTemplate("{% set _ = messages.append({'role': 'user', 'content': 'x'}) %}{{ messages | length }}")
    const messages = [{ role: 'user', content: 'a' }]
    expect(buildPrompt(t, messages)).toBe('2')
    expect(messages).toEqual([{ role: 'user', content: 'a' }])
  })
})
