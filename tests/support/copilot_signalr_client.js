// chat-copilot's web app's own SignalR client (@microsoft/signalr), set up as the web app sets it up:
// the hub URL resolved as new URL('/messageRelayHub', base), no negotiation, WebSockets, JSON protocol.
// Usage: node copilot_signalr_client.js BASE_URI CHAT_ID; prints "joined" on stderr once in the chat's
// group, then every call the server makes as JSON on stdout, until the bot's status is cleared.
const signalR = require('@microsoft/signalr');

const [base, chatId] = process.argv.slice(2);
const hub = new signalR.HubConnectionBuilder()
    .withUrl(new URL('/messageRelayHub', base).toString(), {
        skipNegotiation: true,
        transport: signalR.HttpTransportType.WebSockets,
    })
    .withHubProtocol(new signalR.JsonHubProtocol())
    .configureLogging(signalR.LogLevel.Warning)
    .build();
hub.serverTimeoutInMilliseconds = 60000;

const seen = [];
for (const target of ['ReceiveMessage', 'ReceiveMessageUpdate', 'ReceiveBotResponseStatus']) {
    hub.on(target, (...args) => {
        seen.push([target, args]);
        if (target === 'ReceiveBotResponseStatus' && args[1] === null) {
            process.stdout.write(JSON.stringify(seen));
            void hub.stop().then(() => process.exit(0));
        }
    });
}
hub.start()
    .then(() => hub.invoke('AddClientToGroupAsync', chatId))
    .then(() => console.error('joined'))
    .catch((error) => {
        console.error(`failed: ${error}`);
        process.exit(1);
    });
setTimeout(() => {
    console.error('no reply within 30 s');
    process.exit(2);
}, 30000);
