import { ContributeSettingsForm } from './ContributeSettingsForm.tsx'
import { ContributeToggle } from './ContributeToggle.tsx'
import { ContributionStatsCard } from './ContributionStatsCard.tsx'
import { DeviceOfferCard } from './DeviceOfferCard.tsx'

/** Lend this tab's compute to the swarm: the switch, what it offers, what it has done, the settings. */
export function ContributeView() {
  return (
    <section aria-labelledby="contribute-title" className="view">
      <h1 id="contribute-title">Contribute</h1>
      <p className="lede">Host a few of a model's layers in this tab so others can chat through the swarm. Nothing you type leaves your device when you only contribute.</p>
      <ContributeToggle />
      <div className="grid-2">
        <ContributionStatsCard />
        <DeviceOfferCard />
      </div>
      <ContributeSettingsForm />
    </section>
  )
}
