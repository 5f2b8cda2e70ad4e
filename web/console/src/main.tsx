import { render } from 'preact';
import { App } from './app';
import { storeInvitation } from './session';
import './styles.css';

// An invitation link (/console/join#pd_inv_…): keep the token before anything else can
// redirect to sign-in (the fragment would be lost), and take it out of the address bar.
if (location.pathname.replace(/\/+$/, '') === '/console/join' && location.hash.startsWith('#pd_inv_')) {
  storeInvitation(decodeURIComponent(location.hash.slice(1)));
  history.replaceState(null, '', '/console/join');
}

const root = document.getElementById('app');
if (root) render(<App />, root);
