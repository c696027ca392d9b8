/** A plain-text continuation "chat" for story models such as stories260K: the messages' text, nothing else. */
export const PLAIN_CONTINUATION_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
