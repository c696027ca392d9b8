import { describe, expect, it } from 'vitest'
import { memorySource } from '../source/byte-source.ts'
import { PLAIN_CONTINUATION_TEMPLATE, compileChatTemplate } from './chat-template.ts'
import { storiesGguf, storiesHfFiles } from '../../../testing/format-fixtures.ts'
import { readGguf } from '../formats/gguf.ts'
import { ggufChatTemplate } from '../tokenizer/gguf-tokenizer.ts'
import { hfChatTemplate } from '../tokenizer/hf-tokenizer.ts'
import { LLAMA2, LLAMA3, QWEN25, SMOLLM2, TINYLLAMA } from '../../../testing/chat-templates.ts'

const chat = [{ role: 'user', content: 'Hi there' }]

describe('chat templates (Jinja subset)', () => {
  it('SmolLM2 (ChatML with a default system prompt)', () => {
    expect(compileChatTemplate(SMOLLM2).render(chat, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n')
  })

  it('Llama-3 (bos_token, a filter inside +, set in a loop)', () => {
    const out = compileChatTemplate(LLAMA3).render([{ role: 'system', content: ' Be brief. ' }, ...chat], { addGenerationPrompt: true, bosToken: '<|begin_of_text|>' })
    expect(out).toBe('<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n')
  })

  it('TinyLlama / Zephyr (trim_blocks and lstrip_blocks around block tags on their own lines)', () => {
    const out = compileChatTemplate(TINYLLAMA).render([{ role: 'system', content: 'You are a friendly chatbot' }, ...chat], { addGenerationPrompt: true, eosToken: '</s>' })
    expect(out).toBe('<|system|>\nYou are a friendly chatbot</s>\n<|user|>\nHi there</s>\n<|assistant|>\n')
  })

  it('Llama-2 chat (slices, method calls, modulo, raise_exception)', () => {
    const t = compileChatTemplate(LLAMA2, 'llama2/tokenizer_config.json chat_template')
    const out = t.render([{ role: 'system', content: 'Sys' }, { role: 'user', content: ' Q1 ' }, { role: 'assistant', content: 'A1' }, { role: 'user', content: 'Q2' }], { bosToken: '<s>', eosToken: '</s>' })
    expect(out).toBe('<s>[INST] <<SYS>>\nSys\n<</SYS>>\n\n Q1 [/INST] A1 </s><s>[INST] Q2 [/INST]')
    expect(() => t.render([{ role: 'assistant', content: 'x' }])).toThrow(/llama2\/tokenizer_config.json chat_template: the chat template failed to render: raise_exception\("Conversation roles must alternate/)
  })

  it('Qwen2.5 (whitespace control, tools with tojson, tool calls and responses)', () => {
    const t = compileChatTemplate(QWEN25)
    expect(t.render(chat, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n')
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
    const out = t.render([
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { role: 'tool', content: '18C' },
    ], { tools, addGenerationPrompt: true })
    expect(out).toContain('<tools>\n{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}\n</tools>')
    expect(out).toContain('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n<|im_start|>assistant\n')
  })

  it('covers namespaces, macros, loop controls, tests, filters and slices', () => {
    const src = `{%- set ns = namespace(count=0) -%}
{%- macro tag(name, body='x') -%}<{{ name }}>{{ body }}</{{ name }}>{%- endmacro -%}
{%- for m in messages if m.role != 'skip' -%}
{%- if loop.index > 3 %}{% break %}{% endif -%}
{%- set ns.count = ns.count + 1 -%}
{{ tag(m.role, body=m.content | upper) }}{{ ',' if not loop.last }}
{%- endfor %} n={{ ns.count }} {{ messages | map(attribute='role') | join('/') }} {{ (messages | selectattr('role', 'equalto', 'skip') | list | length) }}
{{- ' ' ~ 'abcdef'[1:4] ~ ' ' ~ [1, 2, 3][-1] ~ ' ' ~ (7 // 2) ~ ' ' ~ ('x' is string) ~ ' ' ~ (missing is defined) ~ ' ' ~ {'a': 1}.get('a') -}}`
    const out = compileChatTemplate(src).render([
      { role: 'user', content: 'a' }, { role: 'skip', content: '-' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }, { role: 'user', content: 'd' },
    ])
    expect(out).toBe('<user>A</user>,<assistant>B</assistant>,<user>C</user>, n=3 user/skip/assistant/user/user 1 bcd 3 3 True False 1')
  })

  it('reports template errors with the file, field and line', () => {
    expect(() => compileChatTemplate('{% for x in y %}{{ x }}', 'm/tokenizer_config.json chat_template')).toThrow(/m\/tokenizer_config.json chat_template: \{% for %\} without \{% endfor %\} \(line 1\)/)
    expect(() => compileChatTemplate('a\n{{ x + }}')).toThrow(/chat_template: expected a value \(line 2\)/)
    expect(() => compileChatTemplate('{% include "x" %}')).toThrow(/unknown or misplaced tag \{% include %\}/)
    expect(() => compileChatTemplate('{{ x | frobnicate }}').render([])).toThrow(/failed to render: unknown filter frobnicate/)
    expect(() => compileChatTemplate('{{ messages[0].content + 1 }}').render(chat)).toThrow(/cannot add string and number/)
  })

  it('stories260K: the plain continuation template, from the GGUF and the tokenizer_config.json the fixtures write', async () => {
    const file = await readGguf(memorySource(await storiesGguf()))
    const fromGguf = ggufChatTemplate(file)
    const fromHf = hfChatTemplate(JSON.parse((await storiesHfFiles())['tokenizer_config.json']))
    expect(fromGguf).toBe(PLAIN_CONTINUATION_TEMPLATE)
    expect(fromHf).toBe(PLAIN_CONTINUATION_TEMPLATE)
    expect(compileChatTemplate(fromGguf!).render([{ role: 'user', content: 'Once upon a time' }], { addGenerationPrompt: true })).toBe('Once upon a time')
    expect(hfChatTemplate({ chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: 'y' }] })).toBe('y')
  })
})
